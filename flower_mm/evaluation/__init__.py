from .classification_report import (build_classification_report,
                                    format_classification_report,
                                    write_classification_report)
from .misclassified import (MISCLASSIFIED_FIELDS, misclassified_record,
                            write_misclassified)

__all__ = [
    'build_classification_report', 'format_classification_report',
    'write_classification_report', 'MISCLASSIFIED_FIELDS',
    'misclassified_record', 'write_misclassified'
]
