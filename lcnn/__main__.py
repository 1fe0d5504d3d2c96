from lcnn.cli import main

raise SystemExit(main())
