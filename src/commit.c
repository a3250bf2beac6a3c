/* commit: not written yet */
