from .classification_report import (build_classification_report,
                                    dump_classification_report,
                                    format_classification_report,
                                    most_confused_pairs,
                                    plot_confusion_matrix,
                                    write_classification_report)
from .misclassified import (MISCLASSIFIED_FIELDS, misclassified_record,
                            sort_misclassified, write_misclassified)

__all__ = [
    'build_classification_report', 'dump_classification_report',
    'format_classification_report', 'most_confused_pairs',
    'plot_confusion_matrix', 'write_classification_report',
    'MISCLASSIFIED_FIELDS', 'misclassified_record', 'sort_misclassified',
    'write_misclassified'
]
