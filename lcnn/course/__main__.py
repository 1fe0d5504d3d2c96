"""python -m lcnn.course run|test|lint|lab: see lcnn/course/runner.py."""

from lcnn.course.runner import main

raise SystemExit(main())
