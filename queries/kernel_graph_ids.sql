-- The graph a node kernel belongs to (schema 3.24 and later), in kernel row order.
SELECT graphId FROM CUPTI_ACTIVITY_KIND_KERNEL ORDER BY rowid
