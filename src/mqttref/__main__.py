from mqttref.cli import main

raise SystemExit(main())
