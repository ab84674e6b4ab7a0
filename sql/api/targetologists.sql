-- GET /api/traffic-dashboard/targetologists: the targetologists this token may read.
SELECT DISTINCT targetologist FROM marts.targetologist_daily ORDER BY targetologist
