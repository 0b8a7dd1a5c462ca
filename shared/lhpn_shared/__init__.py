"""The one library every LHPN service uses: contracts, settings, topology, adapters' helpers."""
