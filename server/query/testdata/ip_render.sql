-- db: flow_log
SELECT ip_0, ip_1, server_port FROM l4_flow_log WHERE ip_1 LIKE '10.%' LIMIT 5
