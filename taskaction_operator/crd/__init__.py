"""The TaskAction resource: its names (group, labels, finalizer, annotations, selectors, owner
reference) and what a body says (``observe``). Pure: no I/O."""
