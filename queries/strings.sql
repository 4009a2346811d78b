-- The string table every *Id / *Name column points into.
SELECT id, value FROM StringIds
