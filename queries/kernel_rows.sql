-- An upper bound on the kernel rows, to size the vector once: the largest
-- rowid (a B-tree descent, not a scan), capped by the database size over 16
-- because every row takes more than 16 bytes on disk.
SELECT min(coalesce(max(rowid), 0),
           (SELECT page_count * page_size / 16 FROM pragma_page_count(), pragma_page_size()))
FROM CUPTI_ACTIVITY_KIND_KERNEL
