-- db: flow_log
SELECT count() FROM flow_metrics.network_1s WHERE server_port = 53
