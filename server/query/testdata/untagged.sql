-- db: flow_log
SELECT count() FROM l4_flow_log WHERE host_0 = '' AND host_1 != ''
