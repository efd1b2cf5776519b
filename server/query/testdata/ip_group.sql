-- db: flow_metrics
SELECT ip_1, sum(bytes_0 + bytes_1) AS bytes FROM network_1m GROUP BY ip_1 ORDER BY bytes DESC LIMIT 10
