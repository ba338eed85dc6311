"""The Dockyard agent: joins a host to a cluster and runs tasks on Docker Engine."""
