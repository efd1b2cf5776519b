-- db: flow_log
SELECT k8s.label.app_1, k8s.annotation.owner_1, count() FROM l7_request_log GROUP BY k8s.label.app_1, k8s.annotation.owner_1
