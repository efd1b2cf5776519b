-- db: flow_metrics
DESCRIBE network_1m
