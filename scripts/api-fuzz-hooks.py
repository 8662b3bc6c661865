"""Hypothesis strategies for the string formats /openapi.json names beyond JSON
Schema's own (its description lists them), so scripts/api-fuzz generates valid values
for them. Loaded by schemathesis through SCHEMATHESIS_HOOKS."""

import ipaddress

import schemathesis
from hypothesis import strategies as st

v4 = st.ip_addresses(v=4).map(str)
v6 = st.ip_addresses(v=6).map(str)


def cidr(version, max_len):
    return st.tuples(st.ip_addresses(v=version), st.integers(0, max_len)).map(
        lambda t: str(ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False))
    )


ip_or_cidr = st.one_of(v4, v6, cidr(4, 32), cidr(6, 128))
label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\Z")
tld = st.from_regex(r"\A[a-z]{2,6}\Z")
domain = st.builds(lambda ls, t: ".".join([*ls, t]), st.lists(label, min_size=1, max_size=3), tld)
port = st.integers(1, 65535)
port_item = st.one_of(
    port.map(str),
    st.tuples(port, port).map(lambda t: f"{min(t)}-{max(t)}"),
)

schemathesis.openapi.format("ip-or-cidr", ip_or_cidr)
schemathesis.openapi.format("scan-target", ip_or_cidr)
schemathesis.openapi.format("domain-name", domain)
schemathesis.openapi.format("domain-glob", st.one_of(domain, domain.map(lambda d: "*." + d)))
schemathesis.openapi.format(
    "port-list", st.lists(port_item, min_size=1, max_size=4).map(",".join)
)
schemathesis.openapi.format(
    "asset-key",
    st.one_of(
        v4.map(lambda a: f"host:{a}"),
        st.tuples(v4, port).map(lambda t: f"service:{t[0]}:{t[1]}/tcp"),
        st.tuples(v4, port).map(lambda t: f"service:{t[0]}:{t[1]}/udp"),
        domain.map(lambda d: f"domain:{d}"),
        st.from_regex(r"\A[0-9a-f]{64}\Z").map(lambda h: f"certificate:{h}"),
    ),
)
schemathesis.openapi.format("cidr", st.one_of(cidr(4, 32), cidr(6, 128)))
schemathesis.openapi.format(
    "seed-cidr",
    st.one_of(
        st.tuples(st.ip_addresses(v=4), st.integers(16, 32)),
        st.tuples(st.ip_addresses(v=6), st.integers(112, 128)),
    ).map(lambda t: str(ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False))),
)
schemathesis.openapi.format(
    "host-port",
    st.one_of(
        st.tuples(domain, port).map(lambda t: f"{t[0]}:{t[1]}"),
        st.tuples(v4, port).map(lambda t: f"{t[0]}:{t[1]}"),
        st.tuples(v6, port).map(lambda t: f"[{t[0]}]:{t[1]}"),
    ),
)

# Scan windows: 5-field cron expressions and IANA zones that parse (whether a set of
# windows ever opens is the service's judgement, not the schema's).
cron_field = lambda lo, hi: st.one_of(
    st.just("*"),
    st.integers(lo, hi).map(str),
    st.integers(1, hi - lo + 1).map(lambda n: f"*/{n}"),
)
schemathesis.openapi.format(
    "cron-5",
    st.tuples(
        cron_field(0, 59), cron_field(0, 23), cron_field(1, 28), cron_field(1, 12), cron_field(0, 6)
    ).map(" ".join),
)
schemathesis.openapi.format(
    "iana-time-zone",
    st.sampled_from(["UTC", "Asia/Shanghai", "Asia/Kathmandu", "Europe/Berlin", "America/New_York"]),
)


# Path parameters scripts/api-fuzz fixes with [parameters]: the value sent is always the
# fixed, valid one, whatever schemathesis drew.
PINNED = {"tenant", "id"}


# A rule between query parameters that a parameter schema cannot state, documented in
# the `sort` parameter's description: descending order only without the filters whose
# indexes read ascending. The service answers it with a 400 that starts like this.
CROSS_PARAMETER_REFUSALS = ("sort=-key with", "descending order is served for")


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drops only (1) "schema-violating request accepted" reports whose invalid component
    is a pinned path parameter: the request really sent carried the valid pinned value;
    (2) "schema-valid request rejected" reports of the documented cross-parameter rule."""
    if type(failure).__name__ == "RejectedPositiveData":
        text = getattr(response, "text", "") or ""
        return not any(marker in text for marker in CROSS_PARAMETER_REFUSALS)
    if type(failure).__name__ != "AcceptedNegativeData":
        return True
    data = getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)
    location = getattr(data, "parameter_location", None)
    return not (
        getattr(data, "parameter", None) in PINNED
        and getattr(location, "value", location) == "path"
    )
