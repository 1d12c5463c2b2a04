"""The repair world: jobs, stages, SLA rules and events. Pure: no I/O, no outer layers."""
