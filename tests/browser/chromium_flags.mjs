// The Chromium flags the project allows every browser test to start with; each driver adds
// what its own run needs (a debugging pipe, a profile folder, proxy settings).
export const BASE_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
