-- NVTX ranges (59 push/pop, 60 start/end, 70/71 their NVTXT variants) and
-- domain creations (75). A name is StringIds[textId] when registered, else text.
SELECT ne.start, ne.end, ne.eventType, ne.globalTid, ne.endGlobalTid,
       coalesce(sid.value, ne.text), ne.domainId
FROM NVTX_EVENTS AS ne
LEFT JOIN StringIds AS sid ON ne.textId = sid.id
WHERE ne.eventType IN (59, 60, 70, 71, 75)
