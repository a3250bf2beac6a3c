/* failure: not written yet */
