-- db: flow_log
SHOW TABLES
