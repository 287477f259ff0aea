"""`twin review`: every claim of an HA design checked with a figure (on top of sim/ and studies/)."""
