-- Mangled kernel names (schema 3.1.2 and later), in kernel row order.
SELECT mangledName FROM CUPTI_ACTIVITY_KIND_KERNEL ORDER BY rowid
