-- The captured time window, in ns on the trace clock.
SELECT min(startTime), max(stopTime) FROM ANALYSIS_DETAILS
