"""Result files read, judged and drawn: the schema and its upgrades, the frame, compare,
the report's tables and figures. Never imports torch, so `report` and `compare` start in
a fraction of a second."""
