"""What every part of the pack stands on, plain Python that imports nothing else of the pack: the
error family (`errors`), the choice lists (`choices`), what this CPU computes natively (`cpu`), a
stage working ahead in a thread (`ahead`), fitting points onto points (`geometry`), a
step's progress as part of a bigger one (`progress`)."""
