from lcnn.app.cli import main

raise SystemExit(main())
