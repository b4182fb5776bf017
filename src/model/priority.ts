// An instance's priority: the order in which instances waiting for capacity
// are placed (higher first, then older first). 0 is the default, so a
// negative priority yields to every instance that did not ask for one.
export const PRIORITY_MIN = -1000;
export const PRIORITY_MAX = 1000;
export const PRIORITY_DEFAULT = 0;
