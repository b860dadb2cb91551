#pragma once
// The validate layer in one include: Validator and SchemaValidator,
// Profile and ProfileBuilder, AnomalyDetector, DriftMonitor, RowSource.
#include <keel/validate/anomaly_detector.hpp>
#include <keel/validate/drift_monitor.hpp>
#include <keel/validate/profile.hpp>
#include <keel/validate/profile_builder.hpp>
#include <keel/validate/row_source.hpp>
#include <keel/validate/schema.hpp>
#include <keel/validate/schema_validator.hpp>
#include <keel/validate/validation_report.hpp>
#include <keel/validate/validator.hpp>
#include <keel/validate/violation.hpp>
