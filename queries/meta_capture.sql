-- Capture options, e.g. the CUDA graph trace mode.
SELECT name, value FROM META_DATA_CAPTURE
