"""Agency-side code: everything that turns an agency's records into hub events."""
