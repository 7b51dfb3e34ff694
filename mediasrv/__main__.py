from mediasrv.cli import main

raise SystemExit(main())
