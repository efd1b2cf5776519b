-- db: flow_log
SELECT flow_id FROM l4_flow_log WHERE server_port BETWEEN 8000 AND 8999 AND protocol IN (6, 17) AND close_type NOT IN ('timeout', 'client_rst') AND rtt_us NOT BETWEEN 1 AND 10
