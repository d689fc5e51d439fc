"""The vendor clients, one module per vendor. Connectors import no rules, daemon or store code;
what each vendor's records are (kinds, fields, system names) is declared in syncd/vendors/."""
