from feedmaker.cli import main

raise SystemExit(main())
