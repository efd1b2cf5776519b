-- db: flow_log
SELECT 1 FROM l4_flow_log WHERE close_type = 'closed'
