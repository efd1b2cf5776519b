-- db: flow_log
SELECT (bytes_0 + bytes_1) * 8 / duration_us, bytes_0 - (bytes_1 - 1), -rtt_us, NOT (is_new_flow = 1) FROM l4_flow_log
