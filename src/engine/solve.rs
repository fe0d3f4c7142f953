//! Solve driver.
