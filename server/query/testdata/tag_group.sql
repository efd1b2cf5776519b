-- db: flow_log
SELECT pod_ns_1, pod_1, count() AS n FROM l7_request_log WHERE region_0 = 'eu-1' GROUP BY pod_ns_1, pod_1 ORDER BY pod_1
