/* serve: not written yet */
