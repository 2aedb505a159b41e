"""The console's views: racks, nodes, one node, pools, fabric, events, and help."""
