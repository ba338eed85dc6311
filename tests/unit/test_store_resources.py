"""Instance resources in the wire shape (store/resources.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dockyard.store.models import Resources
from dockyard.store.resources import as_read, from_wire, with_remaining

KINDS = {
    "CPU": {"type": "INTEGER", "integerValue": 4096},
    "MEMORY": {"type": "INTEGER", "integerValue": 8192},
    "PORTS": {"type": "STRINGSET", "stringSetValue": ["22"]},
    "PORTS_UDP": {"type": "STRINGSET", "stringSetValue": []},
    "GPU": {"type": "STRINGSET", "stringSetValue": ["gpu-0", "gpu-1"]},
    "customThing": {"type": "INTEGER", "integerValue": 3},
}
ports = st.frozensets(st.integers(1, 65535), max_size=5)
left = st.builds(
    Resources,
    cpu=st.integers(-100, 8192),
    memory=st.integers(-100, 16384),
    ports=ports,
    ports_udp=ports,
    gpus=st.frozensets(st.sampled_from(["gpu-0", "gpu-1", "gpu-2"])),
)


@given(left, st.sets(st.sampled_from(sorted(KINDS))))
def test_as_read_is_what_the_written_document_reads_back_as(
    resources: Resources, registered: set[str]
) -> None:
    document = {"registeredResources": [{"name": n, **KINDS[n]} for n in sorted(registered)]}
    items = with_remaining(document, resources)["remainingResources"]
    assert as_read(resources, items) == from_wire(items)
