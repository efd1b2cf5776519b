-- db: flow_log
/* top */ SELECT server_port -- the port
FROM l4_flow_log WHERE protocol = 6; 
