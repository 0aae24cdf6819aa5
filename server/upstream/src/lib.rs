//! Client for the Hub bucket API and the Xet CAS API. TODO (gateway core issue).
