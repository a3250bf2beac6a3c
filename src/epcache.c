/* epcache: not written yet */
