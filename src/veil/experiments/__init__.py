"""Studies that run the pipeline several times and tabulate the results (``veil sweep ...``)."""
