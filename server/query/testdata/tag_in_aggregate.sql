-- db: flow_log
SELECT service_1, count(DISTINCT pod_1) AS pods FROM l7_request_log GROUP BY service_1 ORDER BY service_1
