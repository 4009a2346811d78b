-- CUDA runtime and driver API calls; nameId points into StringIds.
SELECT start, end, globalTid, correlationId, nameId
FROM CUPTI_ACTIVITY_KIND_RUNTIME
