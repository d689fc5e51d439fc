"""What each vendor declares about itself and the records its connector reads, in one registry.

`declare` holds the types (a `Vendor`, its `RecordKind`s, their fields' `Values`); `zendesk`,
`salesforce` and `graph` each declare one vendor, beside its connector in syncd/connectors/
(same names: the declaration here, the client there); `registry` gathers them, and is what the
rules language, the model, the connectors, the daemon and doctor read.

Words. A vendor's `system` names its connector, its settings section and `Operation.system`
(`graph`); its `family` is the prefix of the record kinds admins write in rules (`sharepoint`
in `sharepoint.file`), which `RecordRef.family` returns; `registry.SYSTEM_OF_FAMILY` maps one
to the other.

Plain data: it imports nothing of syncd but itself, and no vendor client, so the rules
language reads it without loading a connector, and connectors without loading rules.
"""
