-- db: flow_log
SELECT request_resource FROM l7_request_log WHERE request_resource NOT LIKE '%/health%' AND user_agent = 'it''s "quoted"'
