-- Every table (and view) in the export; nsys creates tables lazily, so the
-- set differs from file to file.
SELECT name FROM sqlite_master WHERE type IN ('table', 'view')
