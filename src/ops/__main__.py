from src.ops.cli import main

raise SystemExit(main())
