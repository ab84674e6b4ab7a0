-- pg_database: the databases whose privileges still grant PUBLIC (every role) CONNECT or TEMPORARY.
SELECT d.datname
FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
WHERE d.datallowconn AND a.grantee = 0 AND a.privilege_type IN ('CONNECT', 'TEMPORARY')
GROUP BY d.datname
