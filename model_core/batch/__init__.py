"""Studio scale: every line of a dialogue manifest to motion files, resumable, on one machine's
processes or a Ray cluster (`lalia batch`). Not vendored into the add-on: the add-on makes one
take at a time; this room drives the runtime rooms from the command line."""
